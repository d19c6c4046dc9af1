# project_options: language level and sanitizers; project_warnings: the warning set.
# A sanitizer build is one option away:  -DHOSTCHANFS_SANITIZER=address  (ASan+UBSan)
#                                        -DHOSTCHANFS_SANITIZER=thread   (TSan)
# or the presets "asan" and "tsan" in CMakePresets.json.
set(HOSTCHANFS_SANITIZER "" CACHE STRING "Sanitizer build: '', 'address' (ASan+UBSan) or 'thread' (TSan)")
set_property(CACHE HOSTCHANFS_SANITIZER PROPERTY STRINGS "" address thread)
option(HOSTCHANFS_WERROR "Treat warnings as errors" ON)

add_library(project_options INTERFACE)
target_compile_features(project_options INTERFACE cxx_std_20)
target_compile_definitions(project_options INTERFACE _GNU_SOURCE)

if(HOSTCHANFS_SANITIZER STREQUAL "address")
  set(_san -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
elseif(HOSTCHANFS_SANITIZER STREQUAL "thread")
  set(_san -fsanitize=thread -fno-omit-frame-pointer)
elseif(NOT HOSTCHANFS_SANITIZER STREQUAL "")
  message(FATAL_ERROR "HOSTCHANFS_SANITIZER must be '', 'address' or 'thread', not '${HOSTCHANFS_SANITIZER}'")
endif()
if(_san)
  target_compile_options(project_options INTERFACE ${_san})
  target_link_options(project_options INTERFACE ${_san})
endif()

add_library(project_warnings INTERFACE)
target_compile_options(project_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wcast-align -Woverloaded-virtual
  -Wimplicit-fallthrough -Wformat=2)
if(HOSTCHANFS_WERROR)
  target_compile_options(project_warnings INTERFACE -Werror)
endif()

# hostchanfs_add_library(name SOURCES...): a part's library with the project's options.
function(hostchanfs_add_library name)
  add_library(${name} STATIC ${ARGN})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(${name} PUBLIC project_options PRIVATE project_warnings)
endfunction()
