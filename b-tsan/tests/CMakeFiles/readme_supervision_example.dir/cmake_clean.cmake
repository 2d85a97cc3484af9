file(REMOVE_RECURSE
  "../bin/readme_supervision_example"
  "../bin/readme_supervision_example.pdb"
  "CMakeFiles/readme_supervision_example.dir/readme_supervision_example.cpp.o"
  "CMakeFiles/readme_supervision_example.dir/readme_supervision_example.cpp.o.d"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/readme_supervision_example.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
