#define BOOST_TEST_MODULE safetensors
#include "test_support.h"
