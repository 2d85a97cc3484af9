file(REMOVE_RECURSE
  "../lib/libairssys_osl.a"
  "../lib/libairssys_osl.pdb"
  "CMakeFiles/airssys_osl.dir/src/audit.cpp.o"
  "CMakeFiles/airssys_osl.dir/src/audit.cpp.o.d"
  "CMakeFiles/airssys_osl.dir/src/executor.cpp.o"
  "CMakeFiles/airssys_osl.dir/src/executor.cpp.o.d"
  "CMakeFiles/airssys_osl.dir/src/policy.cpp.o"
  "CMakeFiles/airssys_osl.dir/src/policy.cpp.o.d"
  "CMakeFiles/airssys_osl.dir/src/teardown.cpp.o"
  "CMakeFiles/airssys_osl.dir/src/teardown.cpp.o.d"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/airssys_osl.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
