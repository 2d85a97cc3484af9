file(REMOVE_RECURSE
  "../../bin/teardown_test"
  "../../bin/teardown_test.pdb"
  "CMakeFiles/teardown_test.dir/teardown_test.cpp.o"
  "CMakeFiles/teardown_test.dir/teardown_test.cpp.o.d"
  "teardown_test_tests-b12d07c.cmake"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/teardown_test.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
