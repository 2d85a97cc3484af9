file(REMOVE_RECURSE
  "../bin/readme_example"
  "../bin/readme_example.pdb"
  "CMakeFiles/readme_example.dir/readme_example.cpp.o"
  "CMakeFiles/readme_example.dir/readme_example.cpp.o.d"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/readme_example.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
