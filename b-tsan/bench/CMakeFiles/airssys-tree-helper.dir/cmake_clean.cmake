file(REMOVE_RECURSE
  "../bin/airssys-tree-helper"
  "../bin/airssys-tree-helper.pdb"
  "CMakeFiles/airssys-tree-helper.dir/tree_helper.cpp.o"
  "CMakeFiles/airssys-tree-helper.dir/tree_helper.cpp.o.d"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/airssys-tree-helper.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
