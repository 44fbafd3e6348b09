/* placeholder, replaced below */
#include "server/internal.h"
int srv_route_store(srv_req *r) { (void)r; return -1; }
