/* http_sink.c - the smallest billing "service": answers every HTTP/1.1
 * request with 200 and the body {} at once, without reading anything but
 * the headers and Content-Length bytes of body. Keep-alive, one connection
 * at a time (the usage thread has one in flight). It exists only to measure
 * the client side of billing delivery (bench_delivery) on its own.
 *
 *   http_sink [PORT]     (0 or none: any free port; prints "listening on PORT")
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define SINK_HEAD_MAX 65536

static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";

/* Serve one connection until the peer closes it. */
static void serve(int fd) {
	static char buf[SINK_HEAD_MAX + 1];
	static char junk[1 << 16];
	size_t have = 0;
	for(;;) {
		char *end;
		buf[have] = '\0';
		while((end = strstr(buf, "\r\n\r\n")) == NULL) {
			if(have == SINK_HEAD_MAX)
				return;
			ssize_t n = read(fd, buf + have, SINK_HEAD_MAX - have);
			if(n <= 0)
				return;
			have += (size_t)n;
			buf[have] = '\0';
		}
		size_t head = (size_t)(end - buf) + 4;
		unsigned long long length = 0;
		for(char *line = strstr(buf, "\r\n"); line != NULL && line < end; line = strstr(line + 2, "\r\n")) {
			if(strncasecmp(line + 2, "Content-Length:", 15) == 0)
				length = strtoull(line + 17, NULL, 10);
		}
		size_t in_buf = have - head;
		if(in_buf >= length) {
			/* The body (and maybe the next request) is already here. */
			memmove(buf, buf + head + length, in_buf - length);
			have = in_buf - length;
		} else {
			unsigned long long left = length - in_buf;
			while(left > 0) {
				ssize_t n = read(fd, junk, left < sizeof(junk) ? left : sizeof(junk));
				if(n <= 0)
					return;
				left -= (unsigned long long)n;
			}
			have = 0;
		}
		if(write(fd, reply, sizeof(reply) - 1) != (ssize_t)(sizeof(reply) - 1))
			return;
	}
}

int main(int argc, char **argv) {
	int port = argc > 1 ? atoi(argv[1]) : 0;
	int ls = socket(AF_INET, SOCK_STREAM, 0);
	int one = 1;
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t alen = sizeof(a);
	if(bind(ls, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(ls, 16) != 0 ||
			getsockname(ls, (struct sockaddr *)&a, &alen) != 0) {
		perror("http_sink");
		return 1;
	}
	printf("listening on %d\n", ntohs(a.sin_port));
	fflush(stdout);
	for(;;) {
		int fd = accept(ls, NULL, NULL);
		if(fd < 0) {
			if(errno == EINTR)
				continue;
			perror("accept");
			return 1;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		serve(fd);
		close(fd);
	}
}
