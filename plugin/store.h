/* store.h - janus.plugin.paystream.jcfg: the general settings and the
 * permanent rooms.
 *
 * Read once at init; a permanent room created, edited or destroyed with
 * "permanent": true is written back at once (the whole file is rewritten by
 * Janus's config writer, so comments in it do not survive a save). Each room
 * is a category whose `room` item holds its id; the category's name is only
 * a label. Saves are serialized by the store's own mutex. */
#ifndef PAYSTREAM_STORE_H
#define PAYSTREAM_STORE_H

#include <jansson.h>

#include "settings.h"

/* Open (or start an empty) config in folder. Returns 0 or -1. */
int paystream_store_open(const char *folder);
void paystream_store_close(void);

/* The general section as a JSON object of strings (empty if none). */
json_t *paystream_store_general(void);
/* Every room category as a JSON object of strings, in file order. */
json_t *paystream_store_rooms(void);

/* Write s as a permanent room (replacing its previous entry); 0 or -1. */
int paystream_store_save_room(const paystream_room_settings *s);
/* Remove the room's entry; 0 (also when there was none) or -1. */
int paystream_store_remove_room(const char *room);

#endif
