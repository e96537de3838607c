#define BOOST_TEST_MODULE torch_tensor
#include "test_support.h"
