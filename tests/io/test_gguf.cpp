#define BOOST_TEST_MODULE gguf
#include "test_support.h"
