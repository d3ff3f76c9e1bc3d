module fastify-wsconn/bench/gogen

go 1.19
