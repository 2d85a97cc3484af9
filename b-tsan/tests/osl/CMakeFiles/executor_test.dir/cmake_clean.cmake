file(REMOVE_RECURSE
  "../../bin/executor_test"
  "../../bin/executor_test.pdb"
  "CMakeFiles/executor_test.dir/executor_test.cpp.o"
  "CMakeFiles/executor_test.dir/executor_test.cpp.o.d"
  "executor_test_tests-b12d07c.cmake"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/executor_test.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
