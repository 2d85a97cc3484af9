file(REMOVE_RECURSE
  "../../bin/rt_process_test"
  "../../bin/rt_process_test.pdb"
  "CMakeFiles/rt_process_test.dir/process_test.cpp.o"
  "CMakeFiles/rt_process_test.dir/process_test.cpp.o.d"
  "rt_process_test_tests-b12d07c.cmake"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/rt_process_test.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
