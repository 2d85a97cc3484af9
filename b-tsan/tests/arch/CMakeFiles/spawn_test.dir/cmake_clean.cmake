file(REMOVE_RECURSE
  "../../bin/spawn_test"
  "../../bin/spawn_test.pdb"
  "CMakeFiles/spawn_test.dir/spawn_test.cpp.o"
  "CMakeFiles/spawn_test.dir/spawn_test.cpp.o.d"
  "spawn_test_tests-b12d07c.cmake"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/spawn_test.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
