file(REMOVE_RECURSE
  "../../bin/alloc_test"
  "../../bin/alloc_test.pdb"
  "CMakeFiles/alloc_test.dir/alloc_test.cpp.o"
  "CMakeFiles/alloc_test.dir/alloc_test.cpp.o.d"
  "alloc_test_tests-b12d07c.cmake"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/alloc_test.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
