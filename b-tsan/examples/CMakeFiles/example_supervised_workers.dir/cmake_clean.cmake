file(REMOVE_RECURSE
  "../bin/supervised_workers"
  "../bin/supervised_workers.pdb"
  "CMakeFiles/example_supervised_workers.dir/supervised_workers/main.cpp.o"
  "CMakeFiles/example_supervised_workers.dir/supervised_workers/main.cpp.o.d"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/example_supervised_workers.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
