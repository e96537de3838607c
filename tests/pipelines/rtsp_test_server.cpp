// rtsp_test_server: a local RTSP server (libgstrtspserver) that serves one media file as
// an RTP audio stream, for the RTSP pipeline's tests and for trying pipelines/rtsp by hand.
//
//   rtsp_test_server [--port N] [--mount /sample] [--codec opus|l16] [--address A] FILE
//
// Listens on 127.0.0.1 (--address) at port N (0, the default: a free port the system
// picks), and prints one line "ready rtsp://127.0.0.1:PORT/sample" on stdout once it
// listens, so that a test can read the URL from a pipe, then "playing" each time a
// client's stream starts. Each client gets its own playback of FILE from the start
// (media not shared), decoded with decodebin and sent as Opus (the default) or L16
// 16 kHz mono. The server's pipeline runs on its clock, so
// the audio arrives in real time, as from a camera or an encoder: a 30 s file takes
// 30 s to serve. At the end of FILE the stream ends (RTCP BYE); the connection stays
// open until the client closes it. SIGTERM or SIGINT closes the clients' connections
// and exits with status 0; usage errors exit 2, a port that cannot be bound exits 1.
#include <glib-unix.h>
#include <gst/gst.h>
#include <gst/rtsp-server/rtsp-server.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>

namespace {

struct Options {
  std::string file;
  std::string address = "127.0.0.1";
  std::string mount = "/sample";
  std::string codec = "opus";
  int port = 0;
};

[[noreturn]] void usage(const std::string& message) {
  std::cerr
      << "rtsp_test_server: " << message
      << "\nusage: rtsp_test_server [--port N] [--mount /sample] [--codec opus|l16] [--address A] FILE\n";
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(a + " needs a value");
      return argv[++i];
    };
    if (a == "--port") {
      const std::string v = value();
      char* end = nullptr;
      const long p = std::strtol(v.c_str(), &end, 10);
      if (v.empty() || *end || p < 0 || p > 65535) usage("--port expects 0..65535, got '" + v + "'");
      o.port = static_cast<int>(p);
    } else if (a == "--mount") {
      o.mount = value();
      if (o.mount.empty() || o.mount[0] != '/') usage("--mount must start with '/'");
    } else if (a == "--codec") {
      o.codec = value();
      if (o.codec != "opus" && o.codec != "l16") usage("--codec is opus or l16, got '" + o.codec + "'");
    } else if (a == "--address") {
      o.address = value();
    } else if (a == "-h" || a == "--help") {
      std::cout
          << "usage: rtsp_test_server [--port N] [--mount /sample] [--codec opus|l16] [--address A] FILE\n";
      std::exit(0);
    } else if (!a.empty() && a[0] == '-') {
      usage("unknown option " + a);
    } else if (o.file.empty()) {
      o.file = a;
    } else {
      usage("more than one FILE");
    }
  }
  if (o.file.empty()) usage("no FILE");
  std::error_code ec;
  if (!std::filesystem::is_regular_file(o.file, ec)) usage("no such file: " + o.file);
  return o;
}

// One line "playing" on stdout when a client's stream starts, so that a test can time
// what it does (stop the server) on the stream rather than on its own clock.
void on_media_state(GstRTSPMedia* media, gint state, gpointer) {
  if (state != GST_STATE_PLAYING || g_object_get_data(G_OBJECT(media), "announced")) return;
  g_object_set_data(G_OBJECT(media), "announced", GINT_TO_POINTER(1));
  std::cout << "playing" << std::endl;
}

// The filesrc's location is set in media-configure rather than written into the launch
// line, so that no file name needs quoting for gst_parse_launch.
void on_media_configure(GstRTSPMediaFactory*, GstRTSPMedia* media, gpointer user_data) {
  const auto* file = static_cast<const std::string*>(user_data);
  GstElement* bin = gst_rtsp_media_get_element(media);
  if (GstElement* src = gst_bin_get_by_name(GST_BIN(bin), "file")) {
    g_object_set(src, "location", file->c_str(), nullptr);
    gst_object_unref(src);
  }
  gst_object_unref(bin);
  g_signal_connect(media, "new-state", G_CALLBACK(on_media_state), nullptr);
}

GstRTSPFilterResult close_client(GstRTSPServer*, GstRTSPClient*, gpointer) { return GST_RTSP_FILTER_REMOVE; }

gboolean on_signal(gpointer loop) {
  g_main_loop_quit(static_cast<GMainLoop*>(loop));
  return G_SOURCE_REMOVE;
}

}  // namespace

int main(int argc, char** argv) {
  gst_init(&argc, &argv);
  const Options opt = parse(argc, argv);
  const std::string file = std::filesystem::absolute(opt.file).string();

  const std::string payload =
      opt.codec == "opus" ? "opusenc ! rtpopuspay name=pay0 pt=96"
                          : "audio/x-raw,format=S16BE,rate=16000,channels=1 ! rtpL16pay name=pay0 pt=96";
  const std::string launch =
      "( filesrc name=file ! decodebin ! audioconvert ! audioresample ! " + payload + " )";

  GMainLoop* loop = g_main_loop_new(nullptr, FALSE);
  GstRTSPServer* server = gst_rtsp_server_new();
  gst_rtsp_server_set_address(server, opt.address.c_str());
  gst_rtsp_server_set_service(server, std::to_string(opt.port).c_str());

  GstRTSPMediaFactory* factory = gst_rtsp_media_factory_new();
  gst_rtsp_media_factory_set_launch(factory, launch.c_str());
  gst_rtsp_media_factory_set_shared(factory, FALSE);
  g_signal_connect(factory, "media-configure", G_CALLBACK(on_media_configure),
                   const_cast<std::string*>(&file));
  GstRTSPMountPoints* mounts = gst_rtsp_server_get_mount_points(server);
  gst_rtsp_mount_points_add_factory(mounts, opt.mount.c_str(), factory);  // takes the factory
  g_object_unref(mounts);

  GError* error = nullptr;
  GSource* source = gst_rtsp_server_create_source(server, nullptr, &error);
  if (!source) {
    std::cerr << "rtsp_test_server: cannot listen on " << opt.address << ":" << opt.port << ": "
              << (error ? error->message : "unknown error") << "\n";
    g_clear_error(&error);
    g_object_unref(server);
    g_main_loop_unref(loop);
    return 1;
  }
  g_source_attach(source, nullptr);

  g_unix_signal_add(SIGTERM, on_signal, loop);
  g_unix_signal_add(SIGINT, on_signal, loop);

  std::cout << "ready rtsp://" << opt.address << ":" << gst_rtsp_server_get_bound_port(server) << opt.mount
            << std::endl;
  g_main_loop_run(loop);

  // Close the connections (clients see the server go away) and stop listening.
  gst_rtsp_server_client_filter(server, close_client, nullptr);
  g_source_destroy(source);
  g_source_unref(source);
  g_object_unref(server);
  g_main_loop_unref(loop);
  return 0;
}
