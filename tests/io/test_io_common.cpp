#define BOOST_TEST_MODULE io_common
#include "test_support.h"
