#define BOOST_TEST_MODULE bad_gguf
#include "test_support.h"
