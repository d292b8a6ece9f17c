/* plugin.h - what every Janus-facing file shares: the core's callbacks, the
 * plugin descriptor, plugin-wide settings and the helpers that talk back to
 * clients.
 *
 * plugin.c owns the Janus plugin lifecycle (init, destroy, the callback
 * table) and the handler thread; everything else reaches the core through
 * the pointers declared here. */
#ifndef PAYSTREAM_PLUGIN_H
#define PAYSTREAM_PLUGIN_H

#include <glib.h>
#include <jansson.h>

#include <plugins/plugin.h>

#include "settings.h"

#define PAYSTREAM_VERSION 2
#define PAYSTREAM_VERSION_STRING "0.2.0"
#define PAYSTREAM_PACKAGE "janus.plugin.paystream"
#define PAYSTREAM_NAME "paystream"

/* The core's callbacks and our descriptor, valid between init and destroy. */
extern janus_callbacks *paystream_gateway;
extern janus_plugin paystream_plugin;

/* The general section of the plugin's config, read once at init. */
extern paystream_general_settings paystream_general;

/* TRUE while the plugin is initialized and not stopping. */
gboolean paystream_running(void);

#endif
