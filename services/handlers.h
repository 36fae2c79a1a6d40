/*
 * handlers: the API's request handlers and the helpers they share.
 */
#ifndef HP_HANDLERS_H
#define HP_HANDLERS_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/params.h"
#include "runtime/http.h"
#include "base/router.h"

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

#endif
