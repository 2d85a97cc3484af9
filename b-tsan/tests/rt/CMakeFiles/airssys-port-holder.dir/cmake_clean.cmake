file(REMOVE_RECURSE
  "../../bin/airssys-port-holder"
  "../../bin/airssys-port-holder.pdb"
  "CMakeFiles/airssys-port-holder.dir/__/support/port_holder.cpp.o"
  "CMakeFiles/airssys-port-holder.dir/__/support/port_holder.cpp.o.d"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/airssys-port-holder.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
