file(REMOVE_RECURSE
  "../lib/libairssys_base.a"
  "../lib/libairssys_base.pdb"
  "CMakeFiles/airssys_base.dir/src/error.cpp.o"
  "CMakeFiles/airssys_base.dir/src/error.cpp.o.d"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/airssys_base.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
