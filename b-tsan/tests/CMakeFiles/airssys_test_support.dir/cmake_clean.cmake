file(REMOVE_RECURSE
  "../lib/libairssys_test_support.a"
  "../lib/libairssys_test_support.pdb"
  "CMakeFiles/airssys_test_support.dir/support/alloc_counter.cpp.o"
  "CMakeFiles/airssys_test_support.dir/support/alloc_counter.cpp.o.d"
  "CMakeFiles/airssys_test_support.dir/support/catch_main.cpp.o"
  "CMakeFiles/airssys_test_support.dir/support/catch_main.cpp.o.d"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/airssys_test_support.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
