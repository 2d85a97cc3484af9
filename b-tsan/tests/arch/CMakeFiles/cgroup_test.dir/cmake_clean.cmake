file(REMOVE_RECURSE
  "../../bin/cgroup_test"
  "../../bin/cgroup_test.pdb"
  "CMakeFiles/cgroup_test.dir/cgroup_test.cpp.o"
  "CMakeFiles/cgroup_test.dir/cgroup_test.cpp.o.d"
  "cgroup_test_tests-b12d07c.cmake"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/cgroup_test.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
