file(REMOVE_RECURSE
  "../../bin/cgroup_containment_test"
  "../../bin/cgroup_containment_test.pdb"
  "CMakeFiles/cgroup_containment_test.dir/cgroup_containment_test.cpp.o"
  "CMakeFiles/cgroup_containment_test.dir/cgroup_containment_test.cpp.o.d"
  "cgroup_containment_test_tests-b12d07c.cmake"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/cgroup_containment_test.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
