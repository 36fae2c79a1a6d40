/*
 * handlers: the API's request handlers and the helpers they share.
 */
#ifndef HP_HANDLERS_H
#define HP_HANDLERS_H

#include <stddef.h>
#include <stdint.h>

#include "common/http.h"
#include "common/router.h"
#include "services/auth.h"

void hp_handle_healthz(hp_req_t *r);
void hp_handle_readyz(hp_req_t *r);
void hp_handle_restaurant_list(hp_req_t *r);
void hp_handle_restaurant_get(hp_req_t *r);
void hp_handle_menu_get(hp_req_t *r);
void hp_handle_menu_item_patch(hp_req_t *r);
void hp_handle_quote(hp_req_t *r);
void hp_handle_order_create(hp_req_t *r);
void hp_handle_order_get(hp_req_t *r);
void hp_handle_order_history(hp_req_t *r);
void hp_handle_order_event(hp_req_t *r);

/** Reads ?limit= in 1..max (default def). @return 0, or -1 after answering 400 */
int hp_limit_param(hp_req_t *r, int def, int max, int *out);

/** Reads ?cursor= of the given kind. @return 0 (with *present), or -1 after answering 400 */
int hp_cursor_param(hp_req_t *r, uint8_t kind, int *present, int64_t *k1, int64_t *k2);

/** The API's route table. */
extern const hp_route_t hp_api_routes[];
extern const size_t hp_api_num_routes;

#endif
