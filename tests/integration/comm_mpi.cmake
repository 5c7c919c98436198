# MPI tests of the communication layer (label mpi); the tests themselves live in tests/mpi/.
add_subdirectory(${SHARDLM_ROOT}/tests/mpi ${CMAKE_BINARY_DIR}/tests/mpi)
