// The "peft" plugin loads into GStreamer from the build tree.
#define BOOST_TEST_MODULE plugin
#include <boost/test/unit_test.hpp>
#include <gst/gst.h>

#include <cstdlib>
#include <string>

BOOST_AUTO_TEST_CASE(plugin_loads) {
  gst_init(nullptr, nullptr);
  const char* file = std::getenv("PEFT_PLUGIN_FILE");
  BOOST_REQUIRE_MESSAGE(file != nullptr, "PEFT_PLUGIN_FILE is not set (meson test sets it)");
  GError* error = nullptr;
  GstPlugin* plugin = gst_plugin_load_file(file, &error);
  BOOST_REQUIRE_MESSAGE(plugin != nullptr, "cannot load " << file << ": " << (error ? error->message : "?"));
  BOOST_CHECK_EQUAL(std::string(gst_plugin_get_name(plugin)), "peft");
  BOOST_CHECK_EQUAL(std::string(gst_plugin_get_license(plugin)), "MIT/X11");
  gst_object_unref(plugin);
  if (error) g_error_free(error);
}
