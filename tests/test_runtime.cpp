#define BOOST_TEST_MODULE runtime
#include "test_support.h"
