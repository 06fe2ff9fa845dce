# ctest driver: configure, build and run the consumer in one mode.
#   cmake -DMODE=subdirectory|package -DSOURCE=<herald src> -DBINARY=<herald build> -DWORK=<dir>
#         -DCXX=<compiler> -P run.cmake
set(args -S ${CMAKE_CURRENT_LIST_DIR} -B ${WORK}/build -DHERALD_MODE=${MODE}
         -DCMAKE_CXX_COMPILER=${CXX} -DCMAKE_BUILD_TYPE=Release)
if(MODE STREQUAL "subdirectory")
  list(APPEND args -DHERALD_SOURCE_DIR=${SOURCE})
else()
  execute_process(COMMAND ${CMAKE_COMMAND} --install ${BINARY} --prefix ${WORK}/prefix
                  RESULT_VARIABLE rc OUTPUT_QUIET)
  if(rc)
    message(FATAL_ERROR "install failed")
  endif()
  list(APPEND args -DCMAKE_PREFIX_PATH=${WORK}/prefix)
endif()
foreach(step IN ITEMS configure build run)
  if(step STREQUAL "configure")
    execute_process(COMMAND ${CMAKE_COMMAND} ${args} RESULT_VARIABLE rc)
  elseif(step STREQUAL "build")
    execute_process(COMMAND ${CMAKE_COMMAND} --build ${WORK}/build -j2 RESULT_VARIABLE rc)
  else()
    execute_process(COMMAND ${WORK}/build/consumer RESULT_VARIABLE rc)
  endif()
  if(rc)
    message(FATAL_ERROR "${MODE}: ${step} failed (${rc})")
  endif()
endforeach()
