// Process-wide libtorch settings: thread count and the BLAS behind libtorch.
#define BOOST_TEST_MODULE runtime
#include <ATen/Parallel.h>
#include <unistd.h>

#include "peft/runtime.h"
#include "test_support.h"

BOOST_AUTO_TEST_CASE(threads_default_to_all_cores) {
  const auto info = peft::configure_runtime(0);
  BOOST_CHECK_EQUAL(info.threads, static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN)));
  BOOST_CHECK_EQUAL(at::get_num_threads(), info.threads);
  BOOST_CHECK_EQUAL(peft::configure_runtime(1).threads, 1);
  BOOST_CHECK(!info.torch_version.empty());
}

// ./setup installs OpenBLAS; this fails on a machine where libtorch would silently run
// its matrix products on the reference BLAS.
BOOST_AUTO_TEST_CASE(blas_is_openblas) {
  const auto info = peft::configure_runtime(0);
  BOOST_TEST_MESSAGE("BLAS: " << info.blas_library);
  BOOST_CHECK_MESSAGE(!info.blas_library.empty(), "no libblas.so.3 loaded with libtorch");
  BOOST_CHECK_MESSAGE(info.blas_is_openblas, "libblas.so.3 is " << info.blas_library);
}
