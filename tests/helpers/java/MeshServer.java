/*
 * MeshServer — t_java's server: the JDK's own HTTP server
 * (com.sun.net.httpserver: NIO, a selector thread that accepts and a pool
 * that answers), one per port given, in one JVM.
 *
 *   java MeshServer PORT...
 *
 * Each answers every request "java-ok PORT PATH" and prints "listening"
 * once all of them are bound.
 */
import com.sun.net.httpserver.HttpServer;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.Executors;

public class MeshServer {
    public static void main(String[] args) throws Exception {
        for (String arg : args) {
            int port = Integer.parseInt(arg);
            HttpServer server = HttpServer.create(new InetSocketAddress("127.0.0.1", port), 128);
            server.createContext("/", exchange -> {
                byte[] body = ("java-ok " + port + " " + exchange.getRequestURI() + "\n")
                        .getBytes(StandardCharsets.UTF_8);
                exchange.sendResponseHeaders(200, body.length);
                exchange.getResponseBody().write(body);
                exchange.close();
            });
            server.setExecutor(Executors.newFixedThreadPool(4));
            server.start();
        }
        System.out.println("listening");
    }
}
