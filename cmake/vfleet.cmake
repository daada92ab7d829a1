# Helpers shared by every directory.
#
# vf_library(NAME DEPS...)   a static library from every *.c in the current
#                            directory that is not a *_test.c or main.c.
# vf_tests(LIB)              one ctest per *_test.c in the current directory,
#                            linked with LIB and cmocka. A test that exits 77
#                            is reported as skipped, never as passed.

function(vf_library name)
  file(GLOB _srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.c)
  list(FILTER _srcs EXCLUDE REGEX "(_test|/main)\\.c$")
  if(_srcs)
    add_library(${name} STATIC ${_srcs})
    target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR})
    target_link_libraries(${name} PUBLIC ${ARGN})
  else()
    # A layer with no sources yet still gives its dependents the include path.
    add_library(${name} INTERFACE)
    target_include_directories(${name} INTERFACE ${PROJECT_SOURCE_DIR})
    target_link_libraries(${name} INTERFACE ${ARGN})
  endif()
endfunction()

function(vf_tests lib)
  file(GLOB _tests CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*_test.c)
  foreach(_t ${_tests})
    get_filename_component(_n ${_t} NAME_WE)
    add_executable(${_n} ${_t})
    set_target_properties(${_n} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
    target_link_libraries(${_n} PRIVATE ${lib} PkgConfig::CMOCKA)
    add_test(NAME ${_n} COMMAND ${_n})
    set_tests_properties(${_n} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120
                         LABELS unit ENVIRONMENT "VFLEET_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
  endforeach()
endfunction()
