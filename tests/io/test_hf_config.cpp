#define BOOST_TEST_MODULE hf_config
#include "test_support.h"
