DROP TABLE IF EXISTS order_events, payments, order_items, orders, promotions, item_modifiers, menu_items, restaurants, users, cities;
