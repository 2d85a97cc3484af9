file(REMOVE_RECURSE
  "../../bin/policy_test"
  "../../bin/policy_test.pdb"
  "CMakeFiles/policy_test.dir/policy_test.cpp.o"
  "CMakeFiles/policy_test.dir/policy_test.cpp.o.d"
  "policy_test_tests-b12d07c.cmake"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/policy_test.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
