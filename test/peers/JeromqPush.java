// A JeroMQ 0.3.6 PUSH (ZMTP 2.0, from Debian's libjeromq-java): connects, sends N two-frame
// messages ["jeromq", i], waits for them to go out, exits.
// Run: java -cp /usr/share/java/jeromq.jar test/peers/JeromqPush.java tcp://127.0.0.1:PORT N
import org.zeromq.ZMQ;

public class JeromqPush {
  public static void main(String[] args) throws Exception {
    ZMQ.Context context = ZMQ.context(1);
    ZMQ.Socket push = context.socket(ZMQ.PUSH);
    push.setLinger(5000);
    push.connect(args[0]);
    int count = Integer.parseInt(args[1]);
    for (int i = 0; i < count; i++) {
      push.sendMore("jeromq");
      push.send(Integer.toString(i));
    }
    push.close();
    context.term();
  }
}
