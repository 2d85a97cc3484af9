file(REMOVE_RECURSE
  "../../bin/registry_test"
  "../../bin/registry_test.pdb"
  "CMakeFiles/registry_test.dir/registry_test.cpp.o"
  "CMakeFiles/registry_test.dir/registry_test.cpp.o.d"
  "registry_test_tests-b12d07c.cmake"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/registry_test.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
