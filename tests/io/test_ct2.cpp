#define BOOST_TEST_MODULE ct2
#include "test_support.h"
