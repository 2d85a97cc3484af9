file(REMOVE_RECURSE
  "../../bin/smoke_test"
  "../../bin/smoke_test.pdb"
  "CMakeFiles/smoke_test.dir/smoke_test.cpp.o"
  "CMakeFiles/smoke_test.dir/smoke_test.cpp.o.d"
  "smoke_test_tests-b12d07c.cmake"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/smoke_test.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
