#----------------------------------------------------------------
# Generated CMake target import file for configuration "Release".
#----------------------------------------------------------------

# Commands may need to know the format version.
set(CMAKE_IMPORT_FILE_VERSION 1)

# Import target "airssys::rt" for configuration "Release"
set_property(TARGET airssys::rt APPEND PROPERTY IMPORTED_CONFIGURATIONS RELEASE)
set_target_properties(airssys::rt PROPERTIES
  IMPORTED_LINK_INTERFACE_LANGUAGES_RELEASE "CXX"
  IMPORTED_LOCATION_RELEASE "${_IMPORT_PREFIX}/lib/libairssys_rt.a"
  )

list(APPEND _cmake_import_check_targets airssys::rt )
list(APPEND _cmake_import_check_files_for_airssys::rt "${_IMPORT_PREFIX}/lib/libairssys_rt.a" )

# Import target "airssys::osl" for configuration "Release"
set_property(TARGET airssys::osl APPEND PROPERTY IMPORTED_CONFIGURATIONS RELEASE)
set_target_properties(airssys::osl PROPERTIES
  IMPORTED_LINK_INTERFACE_LANGUAGES_RELEASE "CXX"
  IMPORTED_LOCATION_RELEASE "${_IMPORT_PREFIX}/lib/libairssys_osl.a"
  )

list(APPEND _cmake_import_check_targets airssys::osl )
list(APPEND _cmake_import_check_files_for_airssys::osl "${_IMPORT_PREFIX}/lib/libairssys_osl.a" )

# Import target "airssys::arch" for configuration "Release"
set_property(TARGET airssys::arch APPEND PROPERTY IMPORTED_CONFIGURATIONS RELEASE)
set_target_properties(airssys::arch PROPERTIES
  IMPORTED_LINK_INTERFACE_LANGUAGES_RELEASE "CXX"
  IMPORTED_LOCATION_RELEASE "${_IMPORT_PREFIX}/lib/libairssys_arch.a"
  )

list(APPEND _cmake_import_check_targets airssys::arch )
list(APPEND _cmake_import_check_files_for_airssys::arch "${_IMPORT_PREFIX}/lib/libairssys_arch.a" )

# Import target "airssys::base" for configuration "Release"
set_property(TARGET airssys::base APPEND PROPERTY IMPORTED_CONFIGURATIONS RELEASE)
set_target_properties(airssys::base PROPERTIES
  IMPORTED_LINK_INTERFACE_LANGUAGES_RELEASE "CXX"
  IMPORTED_LOCATION_RELEASE "${_IMPORT_PREFIX}/lib/libairssys_base.a"
  )

list(APPEND _cmake_import_check_targets airssys::base )
list(APPEND _cmake_import_check_files_for_airssys::base "${_IMPORT_PREFIX}/lib/libairssys_base.a" )

# Commands beyond this point should not need to know the version.
set(CMAKE_IMPORT_FILE_VERSION)
