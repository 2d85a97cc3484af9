file(REMOVE_RECURSE
  "../bin/airssys-run"
  "../bin/airssys-run.pdb"
  "CMakeFiles/airssys-run.dir/airssys-run.cpp.o"
  "CMakeFiles/airssys-run.dir/airssys-run.cpp.o.d"
  "CMakeFiles/airssys-run.dir/run/metrics.cpp.o"
  "CMakeFiles/airssys-run.dir/run/metrics.cpp.o.d"
  "CMakeFiles/airssys-run.dir/run/output.cpp.o"
  "CMakeFiles/airssys-run.dir/run/output.cpp.o.d"
  "CMakeFiles/airssys-run.dir/run/procfile.cpp.o"
  "CMakeFiles/airssys-run.dir/run/procfile.cpp.o.d"
  "CMakeFiles/airssys-run.dir/run/services.cpp.o"
  "CMakeFiles/airssys-run.dir/run/services.cpp.o.d"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/airssys-run.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
