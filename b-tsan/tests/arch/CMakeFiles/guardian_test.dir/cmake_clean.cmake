file(REMOVE_RECURSE
  "../../bin/guardian_test"
  "../../bin/guardian_test.pdb"
  "CMakeFiles/guardian_test.dir/guardian_test.cpp.o"
  "CMakeFiles/guardian_test.dir/guardian_test.cpp.o.d"
  "guardian_test_tests-b12d07c.cmake"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/guardian_test.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
