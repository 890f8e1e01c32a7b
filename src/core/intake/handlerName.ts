/** The intake handlers by name, as log events and the ensure-case guard name them. */
export type HandlerName = 'start' | 'status' | 'cancel' | 'resume' | 'choice' | 'text';
