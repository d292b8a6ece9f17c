/* store.c - the plugin's config file through Janus's config API (see store.h). */
#include "store.h"

#include <string.h>

#include <config.h>
#include <debug.h>
#include <mutex.h>

#include "plugin.h"

static janus_config *paystream_config;
static char *paystream_config_folder;
static janus_mutex paystream_store_mutex = JANUS_MUTEX_INITIALIZER;

int paystream_store_open(const char *folder) {
	paystream_config_folder = g_strdup(folder);
	char *path = g_strdup_printf("%s/%s.jcfg", folder, PAYSTREAM_PACKAGE);
	if(g_file_test(path, G_FILE_TEST_EXISTS)) {
		paystream_config = janus_config_parse(path);
		if(paystream_config == NULL) {
			JANUS_LOG(LOG_ERR, "[paystream] %s cannot be parsed\n", path);
			g_free(path);
			return -1;
		}
	} else {
		JANUS_LOG(LOG_WARN, "[paystream] no %s: starting with no permanent rooms\n", path);
		paystream_config = janus_config_create(PAYSTREAM_PACKAGE ".jcfg");
	}
	g_free(path);
	return 0;
}

void paystream_store_close(void) {
	janus_mutex_lock(&paystream_store_mutex);
	if(paystream_config != NULL)
		janus_config_destroy(paystream_config);
	paystream_config = NULL;
	g_free(paystream_config_folder);
	paystream_config_folder = NULL;
	janus_mutex_unlock(&paystream_store_mutex);
}

static json_t *paystream_category_json(janus_config_category *category) {
	json_t *entry = json_object();
	GList *items = janus_config_get_items(paystream_config, category);
	for(GList *l = items; l; l = l->next) {
		janus_config_item *item = l->data;
		if(item->type == janus_config_type_item && item->name && item->value)
			json_object_set_new(entry, item->name, json_string(item->value));
	}
	g_list_free(items);
	return entry;
}

json_t *paystream_store_general(void) {
	janus_config_category *general = janus_config_get(paystream_config, NULL, janus_config_type_category, "general");
	return general ? paystream_category_json(general) : json_object();
}

static gboolean paystream_is_room_category(janus_config_category *category) {
	return category->name && g_str_has_prefix(category->name, "room-");
}

json_t *paystream_store_rooms(void) {
	json_t *rooms = json_array();
	GList *categories = janus_config_get_categories(paystream_config, NULL);
	for(GList *l = categories; l; l = l->next) {
		janus_config_category *category = l->data;
		if(paystream_is_room_category(category))
			json_array_append_new(rooms, paystream_category_json(category));
	}
	g_list_free(categories);
	return rooms;
}

/* The category holding room id, or NULL. Call with the store's lock. */
static janus_config_category *paystream_find_room(const char *room) {
	janus_config_category *found = NULL;
	GList *categories = janus_config_get_categories(paystream_config, NULL);
	for(GList *l = categories; l && !found; l = l->next) {
		janus_config_category *category = l->data;
		if(!paystream_is_room_category(category))
			continue;
		janus_config_item *item = janus_config_get(paystream_config, category, janus_config_type_item, "room");
		if(item && item->value && strcmp(item->value, room) == 0)
			found = category;
	}
	g_list_free(categories);
	return found;
}

static int paystream_store_write(void) {
	int rc = janus_config_save(paystream_config, paystream_config_folder, PAYSTREAM_PACKAGE);
	if(rc < 0)
		JANUS_LOG(LOG_ERR, "[paystream] could not write %s/%s.jcfg\n", paystream_config_folder, PAYSTREAM_PACKAGE);
	return rc < 0 ? -1 : 0;
}

int paystream_store_save_room(const paystream_room_settings *s) {
	janus_mutex_lock(&paystream_store_mutex);
	janus_config_category *old = paystream_find_room(s->room);
	if(old != NULL) {
		char *name = g_strdup(old->name);
		janus_config_remove(paystream_config, NULL, name);
		g_free(name);
	}
	/* Config names allow [-A-Za-z0-9_]: room ids may also hold '.', and two
	 * ids may then share a label, so make the label unique. */
	char *label = g_strdup_printf("room-%s", s->room);
	g_strdelimit(label, ".", '_');
	for(int n = 2; janus_config_get(paystream_config, NULL, janus_config_type_category, label); n++) {
		g_free(label);
		label = g_strdup_printf("room-%s-%d", s->room, n);
		g_strdelimit(label, ".", '_');
	}
	janus_config_category *category = janus_config_get_create(paystream_config, NULL,
		janus_config_type_category, label);
	g_free(label);
	json_t *entry = paystream_settings_to_config(s);
	const char *key;
	json_t *value;
	json_object_foreach(entry, key, value) {
		janus_config_add(paystream_config, category, janus_config_item_create(key, json_string_value(value)));
	}
	json_decref(entry);
	int rc = paystream_store_write();
	janus_mutex_unlock(&paystream_store_mutex);
	return rc;
}

int paystream_store_remove_room(const char *room) {
	janus_mutex_lock(&paystream_store_mutex);
	int rc = 0;
	janus_config_category *category = paystream_find_room(room);
	if(category != NULL) {
		char *name = g_strdup(category->name);
		janus_config_remove(paystream_config, NULL, name);
		g_free(name);
		rc = paystream_store_write();
	}
	janus_mutex_unlock(&paystream_store_mutex);
	return rc;
}
