#define BOOST_TEST_MODULE bad_safetensors
#include "test_support.h"
