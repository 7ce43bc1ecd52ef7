# aftr_bpf_object(NAME SOURCE [DEPENDS file...]): compiles SOURCE with clang -target bpf into
# NAME.bpf.o, generates NAME.skel.h with bpftool, and exposes an INTERFACE target NAME_skel
# whose include path holds the skeleton (so the object is embedded in whatever links it).
# The headers SOURCE includes are tracked through clang's depfile; DEPENDS is for anything
# else the object must be rebuilt after.
find_program(AFTR_CLANG NAMES clang-14 clang REQUIRED)
find_program(AFTR_BPFTOOL NAMES bpftool PATHS /usr/sbin /sbin REQUIRED)
execute_process(COMMAND gcc -print-multiarch OUTPUT_VARIABLE AFTR_MULTIARCH
                OUTPUT_STRIP_TRAILING_WHITESPACE)

function(aftr_bpf_object name source)
  cmake_parse_arguments(ARG "" "" "DEPENDS" ${ARGN})
  set(obj ${CMAKE_CURRENT_BINARY_DIR}/${name}.bpf.o)
  set(skel_dir ${CMAKE_CURRENT_BINARY_DIR}/skel)
  set(skel ${skel_dir}/${name}.skel.h)
  add_custom_command(
    OUTPUT ${obj}
    COMMAND ${AFTR_CLANG} -O2 -g -Wall -Werror -target bpf -mcpu=v3
            -I${CMAKE_CURRENT_SOURCE_DIR}/include -I${CMAKE_CURRENT_SOURCE_DIR}
            -I${PROJECT_SOURCE_DIR}/bpf/include -I${PROJECT_SOURCE_DIR}/bpf
            -I/usr/include/${AFTR_MULTIARCH}
            -MD -MF ${obj}.d -c ${CMAKE_CURRENT_SOURCE_DIR}/${source} -o ${obj}
    DEPENDS ${source} ${ARG_DEPENDS}
    DEPFILE ${obj}.d
    COMMENT "BPF ${name}"
    VERBATIM)
  add_custom_command(
    OUTPUT ${skel}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${skel_dir}
    COMMAND ${AFTR_BPFTOOL} gen skeleton ${obj} name ${name} > ${skel}
    DEPENDS ${obj}
    COMMENT "BPF skeleton ${name}"
    VERBATIM)
  add_custom_target(${name}_skel_gen DEPENDS ${skel})
  add_library(${name}_skel INTERFACE)
  add_dependencies(${name}_skel ${name}_skel_gen)
  target_include_directories(${name}_skel INTERFACE ${skel_dir} ${CMAKE_CURRENT_SOURCE_DIR}/include)
  target_link_libraries(${name}_skel INTERFACE PkgConfig::LIBBPF)
endfunction()
