file(REMOVE_RECURSE
  "../../bin/process_actor_test"
  "../../bin/process_actor_test.pdb"
  "CMakeFiles/process_actor_test.dir/process_actor_test.cpp.o"
  "CMakeFiles/process_actor_test.dir/process_actor_test.cpp.o.d"
  "process_actor_test_tests-b12d07c.cmake"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/process_actor_test.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
