file(REMOVE_RECURSE
  "../../bin/lifecycle_test"
  "../../bin/lifecycle_test.pdb"
  "CMakeFiles/lifecycle_test.dir/lifecycle_test.cpp.o"
  "CMakeFiles/lifecycle_test.dir/lifecycle_test.cpp.o.d"
  "lifecycle_test_tests-b12d07c.cmake"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/lifecycle_test.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
