file(REMOVE_RECURSE
  "../../bin/process_torture_test"
  "../../bin/process_torture_test.pdb"
  "CMakeFiles/process_torture_test.dir/process_torture_test.cpp.o"
  "CMakeFiles/process_torture_test.dir/process_torture_test.cpp.o.d"
  "process_torture_test_tests-b12d07c.cmake"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/process_torture_test.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
