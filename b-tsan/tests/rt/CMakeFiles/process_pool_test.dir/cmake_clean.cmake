file(REMOVE_RECURSE
  "../../bin/process_pool_test"
  "../../bin/process_pool_test.pdb"
  "CMakeFiles/process_pool_test.dir/process_pool_test.cpp.o"
  "CMakeFiles/process_pool_test.dir/process_pool_test.cpp.o.d"
  "process_pool_test_tests-b12d07c.cmake"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/process_pool_test.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
