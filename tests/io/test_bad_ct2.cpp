#define BOOST_TEST_MODULE bad_ct2
#include "test_support.h"
