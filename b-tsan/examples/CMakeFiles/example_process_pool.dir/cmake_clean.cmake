file(REMOVE_RECURSE
  "../bin/process_pool"
  "../bin/process_pool.pdb"
  "CMakeFiles/example_process_pool.dir/process_pool/main.cpp.o"
  "CMakeFiles/example_process_pool.dir/process_pool/main.cpp.o.d"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/example_process_pool.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
