file(REMOVE_RECURSE
  "../../bin/failure_paths_test"
  "../../bin/failure_paths_test.pdb"
  "CMakeFiles/failure_paths_test.dir/failure_paths_test.cpp.o"
  "CMakeFiles/failure_paths_test.dir/failure_paths_test.cpp.o.d"
  "failure_paths_test_tests-b12d07c.cmake"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/failure_paths_test.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
