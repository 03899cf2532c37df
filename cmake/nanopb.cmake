# mq_nanopb_generate(<out-var> <proto>...): runs Debian's nanopb generator at
# build time and returns the generated .c files. Generated sources go to
# ${CMAKE_BINARY_DIR}/gen and are never committed. A <name>.options file next
# to a .proto is picked up by the generator (fixed sizes for small fields).
function(mq_nanopb_generate out_var)
  set(gen_dir ${CMAKE_BINARY_DIR}/gen)
  file(MAKE_DIRECTORY ${gen_dir})
  set(sources)
  foreach(proto ${ARGN})
    get_filename_component(abs ${proto} ABSOLUTE)
    get_filename_component(dir ${abs} DIRECTORY)
    get_filename_component(name ${abs} NAME_WE)
    set(deps ${abs})
    if(EXISTS ${dir}/${name}.options)
      list(APPEND deps ${dir}/${name}.options)
    endif()
    add_custom_command(
      OUTPUT ${gen_dir}/${name}.pb.c ${gen_dir}/${name}.pb.h
      COMMAND ${NANOPB_GENERATOR} -q -I ${dir} -D ${gen_dir} ${abs}
      DEPENDS ${deps}
      COMMENT "nanopb: generating ${name}.pb.c"
      VERBATIM)
    list(APPEND sources ${gen_dir}/${name}.pb.c)
  endforeach()
  set(${out_var} ${sources} PARENT_SCOPE)
endfunction()
